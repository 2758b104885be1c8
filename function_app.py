"""The Azure Functions app: one `Services` (built lazily, on first use) handed to the blueprints
of `functions/`."""

import azure.functions as func

from functions.api.blueprint import api_blueprint
from functions.api.v2_blueprint import v2_blueprint
from functions.composition import Services
from functions.promotion.blueprint import promotion_blueprint

services = Services()
app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)
app.register_functions(api_blueprint(services))
app.register_functions(v2_blueprint(services))
app.register_functions(promotion_blueprint(services))
