import instrumentation

instrumentation.init()
