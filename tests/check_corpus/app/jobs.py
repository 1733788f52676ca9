import crewai  # noqa: F401 - the job runs crews


def run():  # expect: GT106
    print("nightly")
