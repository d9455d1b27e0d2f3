"""Files for the owner: the year's tax report and the performance tearsheet (issue 17)."""
