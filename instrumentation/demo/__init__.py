"""The sample multi-agent workload (see ``instrumentation.demo.app.run_demo``)."""
