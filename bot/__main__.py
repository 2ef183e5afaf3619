"""``python -m bot``: read the settings, set up logging, and long-poll until stopped.

A bad configuration exits with code 2 and one line on stderr naming the variable, before
anything else happens; so does a second bot on the same ``DATA_DIR`` (naming the directory
and the other process, :mod:`bot.instance_lock`). SIGTERM/SIGINT stop the bot cleanly (PTB's
``run_polling``, or :func:`bot.webhook.run_webhook` when ``TELEGRAM_WEBHOOK_URL`` is set),
flushing storage on the way out.
"""

from __future__ import annotations

import logging
import os
import sys

from telegram import Update

from bot.app import build_application
from bot.config import ConfigError, load_settings
from bot.instance_lock import AlreadyRunningError, InstanceLockError, acquire_instance_lock
from bot.logging_setup import configure_logging, redact
from bot.storage import StorageError
from bot.webhook import WebhookError, load_or_create_secret, run_webhook

EXIT_CONFIG = 2
EXIT_STARTUP = 1


def main() -> int:
    """Run the bot; return the process exit code."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"newsbot: configuration error: {redact(str(exc))}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format, secrets=settings.secrets)
    log = logging.getLogger("bot")
    lock = None
    try:
        # Held (the descriptor open) until main() returns; the kernel drops it on any exit.
        lock = acquire_instance_lock(settings.data_dir)
        app = build_application(settings)
        if settings.webhook_url:
            secret = load_or_create_secret(settings.data_dir, settings.webhook_secret)
            # Again, now that the secret is known: PTB logs request parameters at DEBUG.
            secrets = (*settings.secrets, secret)
            configure_logging(settings.log_level, settings.log_format, secrets=secrets)
            run_webhook(app, settings, secret)
        else:
            app.run_polling(allowed_updates=Update.ALL_TYPES, close_loop=False)
    except AlreadyRunningError as exc:
        print(f"newsbot: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (InstanceLockError, WebhookError) as exc:
        log.critical("%s", exc)
        return EXIT_STARTUP
    except PermissionError as exc:
        # Most often a bind-mounted volume that still belongs to root: say what to do.
        uid, gid = os.getuid(), os.getgid()
        log.critical(
            "cannot write %s: Permission denied. The bot runs as uid %d; give it the "
            "directory (on the host: chown %d:%d <dir>) or use a named volume.",
            exc.filename or settings.data_dir,
            uid,
            uid,
            gid,
        )
        return EXIT_STARTUP
    except StorageError as exc:
        log.critical("storage cannot start safely: %s", exc)
        return EXIT_STARTUP
    except Exception:
        log.critical("newsbot stopped on an error", exc_info=True)
        return EXIT_STARTUP
    finally:
        if lock is not None:
            lock.release()
    return 0


if __name__ == "__main__":
    sys.exit(main())
