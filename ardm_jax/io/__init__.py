"""Small helpers of the command lines and the library: paths (local and gs://), console, written outputs."""
