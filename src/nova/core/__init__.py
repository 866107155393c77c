"""Value types, names and the error tree shared by every layer (imports nothing of nova)."""
