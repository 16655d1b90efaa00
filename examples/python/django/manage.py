#!/usr/bin/env python
"""A minimal Django product whose Item saves announce themselves through Lookout.

    LOOKOUT_CONFIG=lookout.toml python manage.py migrate --run-syncdb
    LOOKOUT_CONFIG=lookout.toml python manage.py shell -c \
        "from shop.models import Item; Item.objects.create(title='Outbound hooks')"

LOOKOUT_CONFIG sends in-process (`lookout.Engine`); LOOKOUT_URL and LOOKOUT_TOKEN send
through `lookout serve` instead (`lookout.Client`). See shop/signals.py.
"""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
