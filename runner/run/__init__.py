"""Running a job: the service that wires job, store and engine together, and the engine's trio parts."""
