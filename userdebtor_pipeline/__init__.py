"""userdebtor-pipeline: keeps a web store's users and an ERP's debtors in step, both ways."""

__version__ = "0.1.0"
