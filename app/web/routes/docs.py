"""Swagger UI at /docs and ReDoc at /redoc from vendored assets: no CDN, no web fonts."""

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

router = APIRouter(include_in_schema=False)

VENDOR = "/static/vendor"
SWAGGER_UI_VERSION = "5.35.0"  # swagger-ui-dist, see static/vendor/README.md
REDOC_VERSION = "2.5.4"  # redoc

SWAGGER_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backbeat API — Swagger UI</title>
<link rel="icon" type="image/png" href="{VENDOR}/swagger-ui/favicon-32x32.png">
<link rel="stylesheet" href="{VENDOR}/swagger-ui/swagger-ui.css?v={SWAGGER_UI_VERSION}">
<link rel="stylesheet" href="/static/css/docs.css">
</head><body>
<div id="swagger-ui" data-testid="swagger-ui"></div>
<script src="{VENDOR}/swagger-ui/swagger-ui-bundle.js?v={SWAGGER_UI_VERSION}"></script>
<script src="/static/js/docs-swagger.js"></script>
</body></html>
"""

REDOC_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Backbeat API — ReDoc</title>
<link rel="icon" href="/static/img/icon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/css/docs.css">
</head><body>
<redoc spec-url="/openapi.json" data-testid="redoc"></redoc>
<script src="{VENDOR}/redoc/redoc.standalone.js?v={REDOC_VERSION}"></script>
</body></html>
"""


@router.get("/docs", response_class=HTMLResponse)
def swagger_ui() -> HTMLResponse:
    return HTMLResponse(SWAGGER_PAGE)


@router.get("/redoc", response_class=HTMLResponse)
def redoc() -> HTMLResponse:
    return HTMLResponse(REDOC_PAGE)
