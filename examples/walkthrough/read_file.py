"""The walkthrough's last step: read a data-lake file from Python by its uid."""

from radops.data_lake import File

with File("name_in_datalake.txt").open("r") as handle:
    print(handle.read(), end="")
