"""Operations over time: outcomes, monitoring, retraining and the weekly backtest."""
