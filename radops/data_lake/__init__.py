"""The data-lake API: ``from radops.data_lake import File``."""

from radops.file import File, FileInfo
from radops.lake import DataLake, default_lake, set_default_lake

__all__ = ["DataLake", "File", "FileInfo", "default_lake", "set_default_lake"]
