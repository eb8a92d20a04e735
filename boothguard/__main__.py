from boothguard.cli import main

raise SystemExit(main())
