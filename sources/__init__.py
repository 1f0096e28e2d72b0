"""dlt sources of this project."""
