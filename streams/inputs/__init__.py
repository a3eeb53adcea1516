"""Where events come from: files (plain or gzip) and standard input read line by line, other
systems' records turned into canonical events (:mod:`streams.inputs.importers`), and the
pseudonymizer that keeps customer and agent ids out of everything downstream."""
