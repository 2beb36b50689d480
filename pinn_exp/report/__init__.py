"""Aggregation of finished runs into tables and plots (``python -m pinn_exp.report``)."""
