"""Constants of the OpenAI fine-tuning source."""

DEFAULT_BASE_URL = "https://api.openai.com/v1"

# The OpenAI SDK's environment variables, used when dlt config does not set a value.
ENV_API_KEY = "OPENAI_API_KEY"
ENV_BASE_URL = "OPENAI_BASE_URL"
ENV_ORGANIZATION = "OPENAI_ORG_ID"
ENV_PROJECT = "OPENAI_PROJECT_ID"

CONFIG_SECTION = "sources.openai_fine_tuning"

JOBS_PATH = "fine_tuning/jobs"
FILES_PATH = "files"
MAX_PAGE_SIZE = 100  # the API answers 400 above it
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE

# A job in one of these states writes no more checkpoints. Any other status, including ones
# the API adds later (e.g. `paused`), is treated as still moving.
TERMINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})
# statuses of a job that has not started training: no steps, so no events or checkpoints yet
NOT_TRAINING_YET = frozenset({"validating_files", "queued"})

# What the source reads per job, in this order; each name is a dlt resource. The ledger keeps
# a job open until every one of them has read it after the job became final. `events` also
# fills `step_metrics` from the same pages; `training_data` fills `training_examples` and the
# content columns of `files`.
PER_JOB_RESOURCES = ("jobs", "checkpoints", "events", "files", "results", "training_data")
# Organization-level lists: read whole on every run, never part of a job's settling.
ORGANIZATION_RESOURCES = ("models",)
# What a user may select (`resources`, `--resources`, `with_resources()`).
RESOURCES = PER_JOB_RESOURCES + ORGANIZATION_RESOURCES

# Unix seconds outside this range are a unit error (milliseconds, say), not a date: the item is
# refused with its name and field rather than loaded as year 57000.
MIN_UNIX_SECONDS = 0
MAX_UNIX_SECONDS = 4_102_444_800  # 2100-01-01

# Retries (see retry.py for which answers are retried)
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_REQUEST_TIMEOUT = 60.0
DEFAULT_BACKOFF_BASE = 0.5  # seconds before the first retry, doubling, as in the OpenAI SDK
DEFAULT_BACKOFF_MAX = 8.0

# Concurrency: checkpoints of different jobs are read in parallel
DEFAULT_WORKERS = 8
MAX_WORKERS = 64
# pages of one list fetched ahead of its reader, at most (http/read_ahead.py)
READ_AHEAD_PAGES = 4
# Job steps at work at once (job_slots.py): the workers while this process uses less than
# CPU_IDLE of a core, one fewer per JOB_SLOTS_WINDOW seconds it uses CPU_BUSY or more, never
# fewer than FEWEST_JOB_SLOTS
FEWEST_JOB_SLOTS = 2
JOB_SLOTS_WINDOW = 0.25
CPU_BUSY = 0.9
CPU_IDLE = 0.7

# Unix-seconds fields typed as TIMESTAMP WITH TIME ZONE in the destination.
JOB_TIMESTAMP_FIELDS = ("created_at", "finished_at", "estimated_finish")
# Nested job fields kept whole as JSON: their shapes vary by method and would otherwise
# spread over variant columns and child tables.
JOB_JSON_FIELDS = ("error", "hyperparameters", "integrations", "metadata", "method", "result_files")
JOB_TEXT_FIELDS = (
    "status",
    "model",
    "fine_tuned_model",
    "organization_id",
    "training_file",
    "validation_file",
    "object",
)
# A finished job whose `result_files` is still empty is read again until it has some, or until
# this long after it finished (failed and cancelled jobs usually never get any).
RESULTS_GRACE_SECONDS = 86_400
FILE_TIMESTAMP_FIELDS = ("created_at", "expires_at")
# Columns every results CSV is expected to have (others are loaded too, as DOUBLE).
RESULT_COLUMNS = ("train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy")
RESULT_BATCH_ROWS = 20_000  # rows per Arrow table handed to dlt while streaming a results file
# Training and validation files (JSONL): which job fields name them, and as what.
TRAINING_FILE_ROLES = (("training_file", "training"), ("validation_file", "validation"))
# Rows of a table gathered across jobs before they go to dlt as one Arrow table (dlt's cost
# per Arrow item is a few ms, its cost per row nearly nothing)
ARROW_BATCH_ROWS = 20_000
TRAINING_BATCH_ROWS = 20_000  # `training_examples` rows per Arrow table handed to dlt
MODELS_PATH = "models"

# The per-grader list of a reinforcement step's `data` (`scores.graders`, flattened): its
# entries become rows of `step_grader_scores`.
GRADER_LIST = "scores__graders"

CHECKPOINT_METRICS = (
    "step",
    "train_loss",
    "train_mean_token_accuracy",
    "valid_loss",
    "valid_mean_token_accuracy",
    "full_valid_loss",
    "full_valid_mean_token_accuracy",
)

# Azure OpenAI (Microsoft Foundry): same endpoints under the resource's /openai/v1 (or the dated
# /openai with ?api-version=), key in an `api-key` header; the Azure SDK's environment variables.
API_TYPES = ("openai", "azure")
AZURE_V1_PATH = "/openai/v1"
AZURE_DATED_PATH = "/openai"
ENV_AZURE_API_KEY = "AZURE_OPENAI_API_KEY"
ENV_AZURE_ENDPOINT = "AZURE_OPENAI_ENDPOINT"
ENV_AZURE_AD_TOKEN = "AZURE_OPENAI_AD_TOKEN"
ENV_API_VERSION = "OPENAI_API_VERSION"
AUTH_SCHEMES = ("bearer", "api-key")
