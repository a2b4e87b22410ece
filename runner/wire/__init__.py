"""The wire layer: SSE bytes -> events -> a dialect's accumulator -> ``Completion``. Pure: no I/O."""
