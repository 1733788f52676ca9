import app.boot  # noqa: F401
import litellm
from flask import Flask

app = Flask(__name__)  # clean: GT106 (app.boot initialises tracing)


@app.route("/chat", methods=["POST"])
def chat():
    return litellm.completion(model="gpt-4o-mini", messages=[])  # expect: GT102
