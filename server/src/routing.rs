//! Which of a product's services an event goes to.
//!
//! The intake routes every event it takes, so it keeps each product's services validated
//! in memory rather than reading and checking them for each request. The store counts
//! every change to the services ([`Generation`]); an event routed with a copy that a
//! change has since replaced is refused at its commit ([`Admission::Rerouted`]), and the
//! intake routes it again with the product read afresh. So a copy is never trusted, only
//! checked, and that check costs one row read per commit, not per event.
//!
//! [`Admission::Rerouted`]: crate::store::Admission::Rerouted

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use lookout::config::Instance;
use lookout::dispatch::new_delivery_id;
use lookout::payload::Event;

use crate::store::{self, Generation, NewDelivery, Product, Store};

/// A product's enabled services, validated, as of one generation.
pub struct Routes {
    pub generation: Generation,
    services: Vec<Route>,
}

struct Route {
    name: String,
    service: String,
    /// `None` when this build does not know the service or its options no longer
    /// validate: it still gets its delivery, and the worker reports why it cannot be
    /// sent, where an operator will see it.
    instance: Option<Instance>,
}

impl Routes {
    fn of(product: &Product) -> Routes {
        let services = product
            .instances
            .iter()
            .filter(|stored| stored.is_enabled())
            .map(|stored| Route {
                name: stored.name.clone(),
                service: stored.service.clone(),
                instance: stored.instance().ok(),
            })
            .collect();
        Routes {
            generation: product.generation,
            services,
        }
    }

    /// A new delivery for each service that listens to `event`.
    pub fn deliveries(&self, event: &Event) -> Vec<NewDelivery> {
        self.services
            .iter()
            .filter(|route| route.instance.as_ref().is_none_or(|i| i.listens_to(event)))
            .map(|route| NewDelivery {
                id: new_delivery_id(),
                instance: route.name.clone(),
                service: route.service.clone(),
            })
            .collect()
    }
}

/// Products kept at most; past that the copies are dropped and read again as needed.
const MAX_PRODUCTS: usize = 10_000;

/// The routes of the products events are posted for, read once per change.
#[derive(Default)]
pub struct RouteCache {
    products: Mutex<HashMap<String, Arc<Routes>>>,
}

impl RouteCache {
    /// The product's routes (`None`: no such product; that is not kept).
    pub async fn routes(
        &self,
        store: &dyn Store,
        product: &str,
    ) -> store::Result<Option<Arc<Routes>>> {
        if let Some(known) = self.lock().get(product) {
            return Ok(Some(known.clone()));
        }
        let Some(found) = store.product(product).await? else {
            return Ok(None);
        };
        let routes = Arc::new(Routes::of(&found));
        let mut products = self.lock();
        if products.len() >= MAX_PRODUCTS {
            products.clear();
        }
        products.insert(product.to_owned(), routes.clone());
        Ok(Some(routes))
    }

    /// Drops the product's copy of `generation`, found out of date at a commit (a newer
    /// copy another request has read meanwhile stays).
    pub fn forget(&self, product: &str, generation: Generation) {
        let mut products = self.lock();
        if products
            .get(product)
            .is_some_and(|known| known.generation == generation)
        {
            products.remove(product);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Routes>>> {
        // Nothing is left half-done under this lock: a panic elsewhere cannot spoil it.
        self.products
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
