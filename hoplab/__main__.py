from hoplab.cli import main

raise SystemExit(main())
