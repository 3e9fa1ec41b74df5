import sys

from vllmbench.simulator.run import main

sys.exit(main(sys.argv[1:]))
