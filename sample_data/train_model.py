"""Train the sample model: a scikit-learn Pipeline on the Palmer penguins data (CC0).

Run it on your machine (``python sample_data/train_model.py``) rather than downloading a pickle:
a pickle is tied to the library versions that wrote it. Writes ``sample_data/model.joblib``.

The Pipeline is what real projects look like: string categories and empty cells go in as they are
(imputers, one-hot encoding inside a ColumnTransformer) and a random forest predicts the species.
"""

from pathlib import Path

import joblib
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

HERE = Path(__file__).resolve().parent
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
CATEGORICAL = ["island", "sex"]


def main() -> None:
    penguins = pd.read_csv(HERE / "penguins.csv")
    features, species = penguins[CATEGORICAL + NUMERIC], penguins["species"]
    preprocess = ColumnTransformer(
        [
            ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), NUMERIC),
            (
                "categories",
                make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore")),
                CATEGORICAL,
            ),
        ]
    )
    model = Pipeline([("preprocess", preprocess), ("forest", RandomForestClassifier(n_estimators=100, random_state=0))])
    model.fit(features, species)
    joblib.dump(model, HERE / "model.joblib")
    print(f"trained {type(model[-1]).__name__} on {len(penguins)} penguins -> {HERE / 'model.joblib'}")


if __name__ == "__main__":
    main()
