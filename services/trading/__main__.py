from services.trading.cli import main

main()
