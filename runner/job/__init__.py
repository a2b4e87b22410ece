"""Job files -> a validated ``JobSpec`` -> units. Pure: reads files, does no other I/O."""

from runner.job.load import check_environment, load_batch_jsonl, load_job, parse_job
from runner.job.provider import parse_provider_option

__all__ = ["check_environment", "load_batch_jsonl", "load_job", "parse_job", "parse_provider_option"]
