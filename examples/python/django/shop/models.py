from django.db import models

PRODUCT = {"id": 1, "name": "Acme"}
CURRENT_USER = {"id": 7, "first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}


class Item(models.Model):
    title = models.CharField(max_length=200)
    type = models.CharField(max_length=20, default="story")
    status = models.CharField(max_length=20, default="backlog")

    def payload(self, action: str) -> dict:
        """The four-key event Lookout takes (action, model, product, attributes)."""
        return {
            "action": action,
            "model": "Item",
            "product": PRODUCT,
            "attributes": {
                "number": self.pk,
                "title": self.title,
                "type": self.type,
                "status": self.status,
                "short_url": f"https://acme.example/i/{self.pk}",
                "created_by": CURRENT_USER,
                "product": PRODUCT,
            },
        }
