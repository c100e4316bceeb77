"""A sweep's own costs on a real machine: the CPU threads each worker process may use, the
split of a run's wall time into phases, and the exit without interpreter teardown."""
