"""Business logic shared by the console, the admin API, the CLI and the proxy."""
