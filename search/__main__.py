from search.cli.main import command

command()
