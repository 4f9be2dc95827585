"""The portal's one typed settings object (environment prefix ``PORTAL_``)."""

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from portal.notifications.settings import MailSettings
from storage.settings import DEV_SECRET_KEY, StorageSettings

DEFAULT_SECRET_KEY = "insecure-development-secret-change-me"  # noqa: S105 - refused in production


class InsecureProductionSettings(ValueError):
    """Production mode was asked for with development secrets or cookies, or with parts that
    hold state on one node only (SQLite, a keyring file) without saying so."""


class Settings(BaseSettings):
    """Everything the portal reads from its environment, read once and injected."""

    model_config = SettingsConfigDict(env_prefix="PORTAL_", extra="ignore")

    environment: Literal["development", "production", "test"] = "development"
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = Field(default=1, ge=1, le=64)
    """Server processes for ``portal serve``; each runs the whole app (all of it is safe to)."""
    data_dir: Path = Path("var")
    database_url: str = ""
    """SQLAlchemy URL; empty means a SQLite file under ``data_dir``."""
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)
    """Signs CSRF tokens and protects TOTP secrets at rest."""

    cookie_secure: bool = False
    session_cookie_name: str = "portal_session"
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12

    # Sign-in throttling (docs/accounts.md): failures are counted per account and per client
    # address (a keyed hash) over the window; after the free ones each further failure doubles
    # the wait before the next attempt, up to a cap. The account's cap is short so a stranger's
    # failures can only delay its owner, never lock them out.
    login_free_failures: int = Field(default=5, ge=1)
    login_failure_window_minutes: int = Field(default=60, ge=1)
    login_delay_base_seconds: float = Field(default=30.0, gt=0)
    login_client_max_delay_seconds: float = Field(default=15 * 60.0, gt=0)
    login_account_max_delay_seconds: float = Field(default=60.0, gt=0)
    password_min_length: int = 12
    # Password reset (docs/accounts.md): a link lives this long; requests are limited per
    # address and per client over the window (over the limit: the same answer, no mail).
    password_reset_minutes: int = Field(default=30, ge=1)
    password_reset_window_minutes: int = Field(default=60, ge=1)
    password_reset_per_address: int = Field(default=3, ge=1)
    password_reset_per_client: int = Field(default=10, ge=1)
    pending_sign_in_minutes: int = Field(default=5, ge=1)
    """How long a correct staff password waits for its one-time code."""
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536
    argon2_parallelism: int = 4
    totp_issuer: str = "Second Opinion Portal"

    max_file_bytes: int = 4 * 1024**3
    """Largest single file (a whole study in one DICOM or ZIP is rarely bigger)."""
    case_quota_bytes: int = 20 * 1024**3
    """All accepted files of one case together."""
    intake_head_bytes: int = 4 * 1024 * 1024
    """Bytes kept in memory from the start of each upload for validation (DICOM headers)."""
    # A DICOM header longer than the head is read on from the stored (encrypted) file, within
    # these bounds (docs/uploads.md, "Long DICOM headers").
    intake_dicom_header_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    """Longest DICOM header (everything before the pixel data) accepted."""
    intake_dicom_header_max_elements: int = Field(default=100_000, ge=100)
    """Most elements (counting sequence items) a DICOM header may have."""
    intake_dicom_header_max_depth: int = Field(default=64, ge=8, le=128)
    """Deepest nesting of sequences in a DICOM header (pydicom reads them by recursion)."""
    archive_max_entries: int = 20_000
    archive_max_total_bytes: int = 8 * 1024**3
    archive_max_ratio: float = 200.0
    tus_max_bytes: int = 8 * 1024**3
    tus_expiry_hours: int = 24
    """An unfinished resumable upload expires this long after its last PATCH..."""
    tus_max_lifetime_hours: float = Field(default=72.0, gt=0)
    """...and this long after it was created, however often it is PATCHed."""
    tus_max_open_per_case: int = Field(default=20, ge=1)
    """Unfinished resumable uploads one case may have (declared lengths count on its quota)."""
    tus_max_open_per_account: int = Field(default=50, ge=1)

    # Slow or hostile upload clients (docs/uploads.md, "Slow clients"): upload bodies are read
    # on the event loop and worked on by threads of their own, never the shared pool.
    upload_workers: int = Field(default=16, ge=1)
    """Threads that encrypt, store and validate upload bodies, apart from every other route's."""
    upload_stall_seconds: float = Field(default=60.0, gt=0)
    """An upload body that brings no byte for this long is refused (408) and nothing of it kept."""
    uploads_per_account: int = Field(default=4, ge=1)
    """Upload requests (multipart, tus PATCH) one account may have in flight in one process."""
    upload_retry_after_seconds: int = Field(default=10, ge=1)
    """``Retry-After`` of the 429 an account over ``uploads_per_account`` gets."""
    http_header_timeout_seconds: float = Field(default=10.0, gt=0)
    """A connection must finish its request line and headers within this (uvicorn has none)."""
    http_keep_alive_seconds: int = Field(default=5, ge=1)
    """An idle keep-alive connection is closed after this."""

    # Records (PDF reports, photos of paper reports): the photo limit at intake, and the
    # worker processes that draw records for the browser (docs/records.md).
    record_max_pixels: int = Field(default=50_000_000, ge=1_000_000)
    """Largest photo accepted and shown: a 48 MP phone photo (8064 x 6048) passes; a PNG this
    large decodes to 150-200 MB in a render worker."""
    record_render_workers: int = Field(default=2, ge=1, le=32)
    """Render worker processes per server process (each draws one page at a time)."""
    record_render_memory_mb: int = Field(default=1024, ge=256)
    """Address space of one render worker; a record needing more fails alone (about 190 MB
    of it is the interpreter, numpy, Pillow and PDFium)."""
    record_render_seconds: float = Field(default=20.0, gt=0)
    """A render running longer is stopped and its worker replaced."""
    record_render_max_mb: int = Field(default=128, ge=1)
    """Larger originals are not drawn (they are downloaded): their plaintext is handed to a
    worker whole."""

    acceptance_window_hours: int = 24
    """How long a specialist has to accept or decline an offered case."""
    standard_due_business_days: int = 5
    urgent_due_hours: int = 48
    due_soon_hours: int = 24
    """A running deadline closer than this is 'due soon'."""
    max_follow_up_questions: int = 3

    # The public page (before sign-in): indicative prices per priority, and how to reach us.
    price_standard: Decimal = Field(default=Decimal(290), ge=0)
    """Indicative price of a standard second opinion, in ``price_currency``."""
    price_urgent: Decimal = Field(default=Decimal(490), ge=0)
    price_currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    """ISO 4217 code."""
    prices_set_on: date = date(2026, 12, 1)
    """When the prices above were last set; the public page says so beside them."""
    contact_email: str = Field(default="care@second-opinion.example", max_length=254)
    contact_phone: str = Field(default="", max_length=40)
    dicomweb_token_hours: float = Field(default=8.0, gt=0, le=24 * 30)
    """How long a case's read-only DICOMweb token works (a working day by default)."""
    dicomweb_max_tokens_per_case: int = Field(default=20, ge=1)
    dicomweb_frame_cache_mb: int = Field(default=384, ge=0)
    """Decrypted frames kept in each server process's memory for viewers that scroll back and
    forth (a 512 x 512 CT series of 500 slices is 250 MiB); 0 turns it off."""
    """Live tokens one account may hold on one case; making another is refused."""
    break_glass_minutes: int = Field(default=60, ge=1, le=24 * 60)
    """How long an admin's break-glass grant opens a case's content (docs/access.md)."""
    # Durable jobs (docs/jobs.md): completing a resumable upload and importing a ZIP run in
    # workers every server process starts, claimed from the database under a lease.
    jobs_enabled: bool = True
    """Run job workers in this process (one process somewhere must, or uploads never finish)."""
    jobs_workers: int = Field(default=2, ge=1, le=16)
    """Jobs one process runs at once (each holds a thread while it ingests)."""
    jobs_poll_seconds: float = Field(default=2.0, gt=0)
    """How often an idle worker looks for jobs asked for by other processes."""
    jobs_lease_seconds: float = Field(default=120.0, gt=0)
    """A running job's claim; renewed as it progresses. A job whose worker died is taken
    again once its lease runs out."""
    jobs_max_attempts: int = Field(default=5, ge=1)
    """Attempts before a job is given up and its upload marked failed."""
    jobs_retry_seconds: float = Field(default=10.0, ge=0)
    """Wait before the second attempt after an error; doubled for each further one."""
    sweep_enabled: bool = True
    """Run the deadline and acceptance sweep (and mail delivery) inside the server."""
    sweep_interval_seconds: float = 60.0
    sweep_batch: int = Field(default=100, ge=1)
    """At most this many deadline warnings per pass, the earliest deadlines first: a backlog
    (after downtime, or an import) is worked off over several passes instead of holding one
    server process busy for minutes."""

    # Housekeeping after a crash (docs/robustness.md): what a killed process left behind is
    # cleaned up only once it is older than this, so work still running elsewhere is never
    # touched. It must exceed the longest upload validation or ZIP import.
    orphan_grace_seconds: float = Field(default=6 * 3600, ge=0)
    """Age after which a stored object without a row, or an unfinished multipart upload, is
    removed, and a resumable upload whose every byte arrived is finished by housekeeping."""
    orphan_interval_seconds: float = Field(default=3600.0, ge=0)
    """How often (cluster-wide) housekeeping looks for such leftovers: it lists the whole
    bucket, so not at every pass."""

    ohif_version: str = Field(default="3.13.2", pattern=r"^\d+\.\d+\.\d+(-[0-9A-Za-z.]+)?$")
    """The pinned ``@ohif/app`` release; bump it together with ``ohif_integrity`` (docs/ohif.md)."""
    ohif_integrity: str = Field(
        default=(
            "sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5"
            "xXZB9E8EA=="
        ),
        pattern=r"^sha512-[A-Za-z0-9+/]{86}==$",
    )
    """The npm registry's ``dist.integrity`` of that release: the tarball must hash to it."""
    ohif_registry_url: str = "https://registry.npmjs.org"
    """Where ``portal ohif install`` fetches the tarball (an npm registry or a mirror of one)."""
    ohif_dir: Path | None = None
    """Installed viewer releases, one folder per version; unset means ``data_dir/ohif``."""

    # Backups (``portal backup`` / ``portal restore``, docs/backup.md).
    backup_pg_bin_dir: Path | None = None
    """Folder of ``pg_dump``/``pg_restore``; unset: the server's version under
    ``/usr/lib/postgresql/<major>/bin``, else ``PATH``."""

    # Production runs several replicas against one PostgreSQL and one key service; SQLite and
    # a local keyring file live on one machine. Production refuses them unless this says the
    # deployment is one node on purpose (docs/scale.md).
    single_node: bool = False

    log_level: str = "INFO"
    log_format: Literal["json", "plain", "auto"] = "auto"
    """``auto``: plain lines on a terminal, JSON lines otherwise (services, containers)."""

    storage: StorageSettings = Field(default_factory=StorageSettings)
    mail: MailSettings = Field(default_factory=MailSettings)

    @model_validator(mode="after")
    def _fill_defaults(self) -> Self:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.data_dir / 'portal.db'}"
        return self

    @property
    def ohif_root(self) -> Path:
        """The folder holding installed OHIF releases."""
        return self.ohif_dir if self.ohif_dir is not None else self.data_dir / "ohif"

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def cookie_name(self) -> str:
        # The __Host- prefix makes browsers refuse the cookie unless Secure, Path=/ and host-only.
        return (
            f"__Host-{self.session_cookie_name}" if self.cookie_secure else self.session_cookie_name
        )

    def _single_node_parts(self) -> list[str]:
        """What ties production to one machine, unless ``single_node`` says that is meant."""
        if self.single_node:
            return []
        problems = []
        if self.database_url.startswith("sqlite"):
            problems.append(
                "PORTAL_DATABASE_URL is SQLite, which serves one node only: use PostgreSQL "
                "(postgresql+psycopg://...) or set PORTAL_SINGLE_NODE=true to run one node"
            )
        if self.storage.key_provider == "local" and self.storage.keyring is None:
            problems.append(
                "the data keys are wrapped by a local keyring file only this node holds: set "
                "PORTAL_STORAGE_KEY_PROVIDER=kms or PORTAL_SINGLE_NODE=true to run one node"
            )
        return problems

    def check_production_ready(self) -> None:
        """Refuse to run in production with development secrets or cookies that travel in clear."""
        if not self.production:
            return
        problems = []
        if self.secret_key.get_secret_value() in {DEFAULT_SECRET_KEY, ""}:
            problems.append("PORTAL_SECRET_KEY is the development default")
        elif len(self.secret_key.get_secret_value()) < 32:
            problems.append("PORTAL_SECRET_KEY must be at least 32 characters")
        if not self.cookie_secure:
            problems.append("PORTAL_COOKIE_SECURE must be true (cookies only over TLS)")
        if not self.base_url.startswith("https://"):
            problems.append("PORTAL_BASE_URL must be an https:// address")
        if self.storage.secret_access_key.get_secret_value() == DEV_SECRET_KEY:
            problems.append("PORTAL_STORAGE_SECRET_ACCESS_KEY is the development default")
        problems.extend(self._single_node_parts())
        if problems:
            raise InsecureProductionSettings(
                "refusing to start in production: " + "; ".join(problems)
            )
