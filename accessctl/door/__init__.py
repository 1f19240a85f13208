"""One frame at the door: the pipeline, the access decisions, their outputs (JSON, audit
log, hook) and the loop over a feed."""
