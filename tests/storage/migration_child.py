"""A process opening the store, run by test_migrations.py to open a new database concurrently.

    python migration_child.py URL NAME wait    # say READY, wait for a line on stdin, open
    python migration_child.py URL NAME pause   # open; pause after migrating, before the
                                               # commit, until a line arrives on stdin

Once the store is open the child records the setting ``opened by NAME`` and says DONE.
"""

from __future__ import annotations

import sys

from termdeposit.storage import migrations, store


def main(url: str, name: str, mode: str) -> None:
    if mode == "pause":
        real_upgrade = migrations.command.upgrade

        def upgrade_then_pause(config, revision, **options):
            real_upgrade(config, revision, **options)
            print("PAUSED", flush=True)  # migrated, in the open transaction
            sys.stdin.readline()

        migrations.command.upgrade = upgrade_then_pause
    else:
        print("READY", flush=True)
        sys.stdin.readline()
    print("OPENING", flush=True)
    store.open_store(url).set_setting(f"opened by {name}", name)
    print("DONE", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
