"""Operations: metrics and the admin dashboard's data."""

urlpatterns: list = []
