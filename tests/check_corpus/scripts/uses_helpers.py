from app import llm

if __name__ == "__main__":  # expect: GT106
    llm.library_api("q")
