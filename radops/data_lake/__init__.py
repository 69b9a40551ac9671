"""The data-lake API: ``from radops.data_lake import File, file_creator``."""

from radops.creator import CallReport, file_creator, reporting_calls
from radops.file import File, FileInfo
from radops.lake import DataLake, default_lake, set_default_lake
from radops.lineage.graph import LineageGraph

__all__ = [
    "CallReport",
    "DataLake",
    "File",
    "FileInfo",
    "LineageGraph",
    "default_lake",
    "file_creator",
    "reporting_calls",
    "set_default_lake",
]
