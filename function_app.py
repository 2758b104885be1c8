"""The Azure Functions app: it only composes the blueprints of `functions/`."""

import azure.functions as func

from functions.api.blueprint import bp as api
from functions.promotion.blueprint import bp as promotion

app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(api)
app.register_functions(promotion)
