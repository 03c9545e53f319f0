//! The catalog: operators, lots and spots.

use crate::catalog::{Lot, Operator, Spot};
use crate::error::{Error, Result};
use crate::ids::LotId;

use super::Engine;

impl Engine {
    /// Creates or replaces an operator.
    pub async fn put_operator(&self, operator: &Operator) -> Result<()> {
        if operator.name.trim().is_empty() {
            return Err(Error::invalid("name", "must not be empty"));
        }
        self.inner.store.put_operator(operator).await?;
        self.forget_lots();
        Ok(())
    }

    /// Creates or replaces a lot, after checking its settings.
    pub async fn put_lot(&self, lot: &Lot) -> Result<()> {
        lot.validate()?;
        self.inner.store.put_lot(lot).await?;
        self.forget_lot(lot.id);
        Ok(())
    }

    /// Creates or replaces a spot.
    pub async fn put_spot(&self, spot: &Spot) -> Result<()> {
        if spot.label.trim().is_empty() {
            return Err(Error::invalid("label", "must not be empty"));
        }
        self.inner.store.put_spot(spot).await?;
        self.forget_lot(spot.lot);
        Ok(())
    }

    /// A lot.
    pub async fn lot(&self, id: LotId) -> Result<Lot> {
        Ok(self.view(id).await?.lot.clone())
    }

    /// The spots of a lot.
    pub async fn spots(&self, id: LotId) -> Result<Vec<Spot>> {
        Ok(self.view(id).await?.spots.clone())
    }
}
