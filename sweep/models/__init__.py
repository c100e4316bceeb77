"""The models a sweep leaves behind: the chosen config refitted on all the data
(``sweep refit``), saved as a state dict and logged to MLflow."""
