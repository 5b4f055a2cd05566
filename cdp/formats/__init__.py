"""The Console's date and time formats (settings.FORMAT_MODULE_PATH), by language."""
