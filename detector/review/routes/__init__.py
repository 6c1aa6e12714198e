"""The review app's routers, one per concern; :func:`detector.review.app.create_app` includes them."""
