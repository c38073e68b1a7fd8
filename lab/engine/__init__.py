"""The engine: the only code that imports docker. All lab state lives in labels."""
