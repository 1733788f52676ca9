"""`genaitrace check`: find the LLM and agent calls that would escape tracing, cost or attribution.

Static analysis with Python's `ast`: nothing of the scanned code is imported or run, nothing goes
over the network. Rules, their ids and texts: `genaitrace_check.rules`; what they know about
providers, SDKs and instrumentors: `genaitrace_check.catalog`.
"""

__version__ = "0.1.0"
