import instrumentation
from app.main import main

if __name__ == "__main__":  # clean: GT106 (init is called)
    instrumentation.init(service_name="runner")
    main()
