"""``python -m taxiflow.demo``: write synthetic TLC months into landing/."""

import sys

from taxiflow.demo.trips import main

sys.exit(main())
