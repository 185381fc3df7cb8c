import sys

from facenet_keras.cli import main

sys.exit(main())
