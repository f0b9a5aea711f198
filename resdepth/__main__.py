from resdepth.cli import main

main()
