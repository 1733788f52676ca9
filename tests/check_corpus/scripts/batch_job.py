import litellm

import instrumentation

if __name__ == "__main__":  # expect: GT106
    with instrumentation.attributes(tenant_id="batch"):
        litellm.completion(model="gpt-4o-mini", messages=[])  # clean: GT102 (attributed)
