"""The data-lake API: ``from radops.data_lake import File, file_creator``."""

from radops.creator import file_creator
from radops.file import File, FileInfo
from radops.lake import DataLake, default_lake, set_default_lake

__all__ = ["DataLake", "File", "FileInfo", "default_lake", "file_creator", "set_default_lake"]
