"""One module per `dlcls` command: add_arguments(parser) and run(args) -> exit code. The same
modules serve `jobs/<command>.py` for `ray job submit`."""
