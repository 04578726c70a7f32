"""One module per command: it parses options and prints; the library does the work."""
