"""The ``portal`` command."""

from __future__ import annotations

import argparse
import getpass
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from portal.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from portal import runner

    runner.run(settings, with_demo=args.demo)
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from portal import runner
    from portal.observability import configure_logging

    configure_logging(level=settings.log_level, log_format=settings.log_format)
    runner.serve(settings)
    return 0


def _init(args: argparse.Namespace, settings: Settings) -> int:
    from portal import runner

    for line in runner.init(settings, with_demo=args.demo):
        print(line)
    return 0


def _users_add(args: argparse.Namespace, settings: Settings) -> int:
    from portal import admin_commands

    password = _read_password(args.password_stdin)
    return admin_commands.add_user(
        settings,
        role=args.role,
        email=args.email,
        full_name=args.name,
        language=args.language,
        password=password,
        profile=_profile_options(args),
    )


def _profile_options(args: argparse.Namespace) -> dict[str, object] | None:
    """The specialist profile given on the command line (only for ``--role specialist``)."""
    given = {
        "specialties": args.specialty,
        "body_regions": args.region,
        "modalities": args.modality,
        "languages": args.speaks,
        "credentials": args.credentials,
        "max_active_cases": args.max_active,
    }
    given = {name: value for name, value in given.items() if value is not None}
    if given and args.role != "specialist":
        raise SystemExit("portal: profile options (--specialty, --region, …) are for specialists")
    return given or None


def _read_password(from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Repeat password: ") != first:
        raise SystemExit("the passwords do not match")
    return first


def _audit_verify(args: argparse.Namespace, settings: Settings) -> int:
    from portal import admin_commands

    return admin_commands.verify_audit(settings, seal=not args.no_seal)


def _keys_rotate(args: argparse.Namespace, settings: Settings) -> int:
    from portal import storage_commands

    return storage_commands.rotate_keys(settings)


def _keys_retire(args: argparse.Namespace, settings: Settings) -> int:
    from portal import storage_commands

    return storage_commands.retire_kek(settings, args.version)


def _storage_scrub(args: argparse.Namespace, settings: Settings) -> int:
    from portal import storage_commands

    return storage_commands.scrub(settings)


def _cases_erase(args: argparse.Namespace, settings: Settings) -> int:
    from portal import storage_commands

    if not args.yes:
        if not sys.stdin.isatty():
            print("portal: erasing is irreversible; pass --yes to confirm", file=sys.stderr)
            return 2
        answer = input(f"Erase case {args.case_id} and destroy its key for good? Type 'erase': ")
        if answer.strip() != "erase":
            print("nothing erased")
            return 1
    return storage_commands.erase_case(settings, args.case_id)


def _backup(args: argparse.Namespace, settings: Settings) -> int:
    from portal.backup import commands

    return commands.backup(
        settings,
        args.directory,
        with_objects=not args.no_objects,
        with_keyring=not args.no_keyring,
    )


def _restore(args: argparse.Namespace, settings: Settings) -> int:
    from portal.backup import commands

    return commands.restore(
        settings,
        args.directory,
        keyring_file=args.keyring,
        manifest_sha256=args.manifest_sha256,
        erase_again=args.erase_again,
    )


def _cases_seal_text(args: argparse.Namespace, settings: Settings) -> int:
    from portal import storage_commands

    return storage_commands.seal_text(settings)


def _sweep(args: argparse.Namespace, settings: Settings) -> int:
    from portal import storage_commands

    return storage_commands.sweep(settings, mail=not args.no_mail)


def _treatment_seed(args: argparse.Namespace, settings: Settings) -> int:
    from portal import admin_commands

    return admin_commands.seed_treatment_guide(settings, overwrite=args.overwrite)


def _ohif_install(args: argparse.Namespace, settings: Settings) -> int:
    from portal.ohif import install

    return install.install_command(settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portal", description="Second-opinion portal")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="set up and serve with embedded SeaweedFS (development)")
    run.add_argument("--demo", action="store_true", help="create demo accounts on first run")
    run.set_defaults(handler=_run)

    commands.add_parser("serve", help="serve the portal (production)").set_defaults(handler=_serve)

    init = commands.add_parser("init", help="migrate the database, create the local keyring")
    init.add_argument("--demo", action="store_true", help="create demo accounts")
    init.set_defaults(handler=_init)

    users = commands.add_parser("users", help="manage accounts").add_subparsers(
        dest="users_command", required=True
    )
    add = users.add_parser("add", help="create an account (staff are enrolled in TOTP)")
    add.add_argument(
        "--role", required=True, choices=["patient", "specialist", "coordinator", "admin"]
    )
    add.add_argument("--email", required=True)
    add.add_argument("--name", required=True, help="full name")
    add.add_argument("--language", default="en", help="ISO 639-1 code, e.g. en, ru")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    profile = add.add_argument_group("specialist profile (--role specialist)")
    profile.add_argument(
        "--specialty", action="append", help="e.g. spine_surgery, neuroradiology (repeat)"
    )
    profile.add_argument("--region", action="append", help="body region read, e.g. spine (repeat)")
    profile.add_argument(
        "--modality", action="append", help="DICOM modality read, e.g. MR (repeat)"
    )
    profile.add_argument(
        "--speaks",
        action="append",
        help="language of opinions, e.g. ru (repeat; default --language)",
    )
    profile.add_argument("--credentials", help="licence and credentials line for signatures")
    profile.add_argument("--max-active", type=int, help="most cases held at once (default 8)")
    add.set_defaults(handler=_users_add)

    audit = commands.add_parser("audit", help="audit trail").add_subparsers(
        dest="audit_command", required=True
    )
    verify = audit.add_parser(
        "verify", help="seal pending rows, check the chain; non-zero exit names the first bad row"
    )
    verify.add_argument(
        "--no-seal", action="store_true", help="only check: leave unsealed rows as they are"
    )
    verify.set_defaults(handler=_audit_verify)

    keys = commands.add_parser("keys", help="key-encryption keys").add_subparsers(
        dest="keys_command", required=True
    )
    keys.add_parser(
        "rotate", help="new KEK version; re-wrap every case key (objects untouched)"
    ).set_defaults(handler=_keys_rotate)
    retire = keys.add_parser("retire", help="destroy an old local KEK version no key uses")
    retire.add_argument("version", type=int)
    retire.set_defaults(handler=_keys_retire)

    storage = commands.add_parser("storage", help="object storage").add_subparsers(
        dest="storage_command", required=True
    )
    storage.add_parser(
        "scrub", help="read back every object; report missing, corrupt and orphaned ones"
    ).set_defaults(handler=_storage_scrub)

    cases = commands.add_parser("cases", help="cases").add_subparsers(
        dest="cases_command", required=True
    )
    erase = cases.add_parser("erase", help="crypto-shred a case: key, objects and rows")
    erase.add_argument("case_id")
    erase.add_argument("--yes", action="store_true", help="confirm without a prompt")
    erase.set_defaults(handler=_cases_erase)
    cases.add_parser(
        "seal-text", help="seal free text left in clear by the upgrade to sealed columns"
    ).set_defaults(handler=_cases_seal_text)

    backup = commands.add_parser(
        "backup", help="back up the database, keyring and encrypted objects into a new directory"
    )
    backup.add_argument("directory", type=Path, help="a new or empty directory")
    backup.add_argument(
        "--no-objects",
        action="store_true",
        help="list and checksum the objects without copying them (versioned, replicated bucket)",
    )
    backup.add_argument(
        "--no-keyring",
        action="store_true",
        help="leave the local keyring out (kept apart, e.g. in a secrets manager)",
    )
    backup.set_defaults(handler=_backup)

    restore = commands.add_parser(
        "restore", help="restore a backup into an empty database and an empty bucket"
    )
    restore.add_argument("directory", type=Path, help="a directory written by `portal backup`")
    restore.add_argument(
        "--keyring", type=Path, help="the keyring file to use instead of the backup's copy"
    )
    restore.add_argument(
        "--manifest-sha256", help="refuse unless manifest.json has this SHA-256 (from the backup)"
    )
    restore.add_argument(
        "--erase-again",
        type=Path,
        metavar="FILE",
        help="case ids erased since the backup (one a line): erased again right after restoring",
    )
    restore.set_defaults(handler=_restore)

    sweep = commands.add_parser(
        "sweep",
        help="periodic housekeeping: unanswered offers, deadline warnings, mail, expired uploads",
    )
    sweep.add_argument("--no-mail", action="store_true", help="leave queued mail for later")
    sweep.set_defaults(handler=_sweep)

    treatment = commands.add_parser(
        "treatment", help="the condition and treatment guide"
    ).add_subparsers(dest="treatment_command", required=True)
    seed = treatment.add_parser(
        "seed", help="load the guide's seed file: add missing conditions, options and clinics"
    )
    seed.add_argument(
        "--overwrite", action="store_true", help="also bring edited entries back to the file"
    )
    seed.set_defaults(handler=_treatment_seed)

    ohif = commands.add_parser("ohif", help="the OHIF viewer for specialists").add_subparsers(
        dest="ohif_command", required=True
    )
    ohif.add_parser(
        "install", help="download the pinned @ohif/app release, verify and unpack it (idempotent)"
    ).set_defaults(handler=_ohif_install)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings()
    except ValidationError as exc:
        # Name the setting and the rule, never the value: it may be a secret.
        for error in exc.errors():
            name = ".".join(str(part) for part in error["loc"])
            print(f"portal: configuration error: {name}: {error['msg']}", file=sys.stderr)
        return 2
    handler: Handler = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
