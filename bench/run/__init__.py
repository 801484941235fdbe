"""Running the benchmark: what a job is and whether its record is current (`spec`), running one
job (`jobs`), the whole run (`runner`), where jobs run (`executors`, `ray_executor`) and
re-evaluating a recorded checkpoint (`verify`)."""
