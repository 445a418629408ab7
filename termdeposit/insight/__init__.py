"""Why and for whom: SHAP explanations, fairness by group, and the charts."""
