"""The walkthrough's pipeline: make a new data-lake file from another, with its lineage."""

from radops.data_lake import File, file_creator


@file_creator
def process(f: File, output_uid: str) -> File:
    with f.open("r") as fileobj:
        data = fileobj.read()
    data += "additional data"
    out_file = File(output_uid)
    with out_file.open("w") as fileobj:
        fileobj.write(data)
    return out_file


if __name__ == "__main__":
    f_out = process(f=File("name_in_datalake.txt"), output_uid="processed_file.txt")
    with f_out.open("r") as fileobj:
        print(fileobj.read())
