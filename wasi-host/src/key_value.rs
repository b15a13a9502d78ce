//! Spin's key-value interface (`spin:key-value/key-value@3.0.0`) for the component, in memory:
//! one store, `default`, shared by every instance the host creates, as Spin's default store
//! is shared by the instances it creates per request. Each call is atomic on its own; there
//! is no compare-and-swap, as in Spin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Accessor, FutureReader, HasData, Resource, ResourceTable, StreamReader};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "surge:wasi-host/key-value-host",
        imports: {
            // Building its stream and future can fail in the store: that is a trap.
            "spin:key-value/key-value.[method]store.get-keys": trappable,
        },
        with: {
            "spin:key-value/key-value.store": super::OpenStore,
        },
    });
}

use bindings::spin::key_value::key_value::{self, Error};

/// The only store label the host knows, as in a Spin app that declares just the default.
pub const DEFAULT_STORE: &str = "default";

/// The stores' contents, shared by every instance.
#[derive(Clone, Default)]
pub struct KeyValueState(Arc<Mutex<HashMap<String, Vec<u8>>>>);

impl KeyValueState {
    /// How many keys the default store holds.
    pub fn len(&self) -> usize {
        self.0.lock().map_or(0, |m| m.len())
    }

    /// The default store's keys.
    pub fn keys(&self) -> Vec<String> {
        self.0
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Puts `value` under `key` in the default store, as another instance would.
    pub fn insert(&self, key: &str, value: &[u8]) {
        if let Ok(mut map) = self.0.lock() {
            map.insert(key.to_string(), value.to_vec());
        }
    }

    /// Whether the default store is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn with<R>(&self, f: impl FnOnce(&mut HashMap<String, Vec<u8>>) -> R) -> Result<R, Error> {
        let mut map = self
            .0
            .lock()
            .map_err(|_| Error::Other("the store's lock is poisoned".into()))?;
        Ok(f(&mut map))
    }
}

/// An open store (a guest's `store` resource).
pub struct OpenStore {
    state: KeyValueState,
}

/// The view of a store's data that the interface works on.
pub struct KeyValueView<'a> {
    /// The instance's resource table.
    pub table: &'a mut ResourceTable,
    /// The shared contents.
    pub state: &'a KeyValueState,
}

/// Marks the interface's data for the linker.
pub struct KeyValue;

impl HasData for KeyValue {
    type Data<'a> = KeyValueView<'a>;
}

/// Adds the interface to `linker`, with `view` giving each store's [`KeyValueView`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    view: fn(&mut T) -> KeyValueView<'_>,
) -> wasmtime::Result<()> {
    key_value::add_to_linker::<T, KeyValue>(linker, view)
}

fn state_of<T>(
    accessor: &Accessor<T, KeyValue>,
    store: &Resource<OpenStore>,
) -> Result<KeyValueState, Error> {
    accessor.with(|mut access| {
        access
            .get()
            .table
            .get(store)
            .map(|open| open.state.clone())
            .map_err(|e| Error::Other(e.to_string()))
    })
}

impl key_value::Host for KeyValueView<'_> {}

impl key_value::HostStore for KeyValueView<'_> {
    fn drop(&mut self, store: Resource<OpenStore>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<T> key_value::HostStoreWithStore<T> for KeyValue {
    async fn open(
        accessor: &Accessor<T, Self>,
        label: String,
    ) -> Result<Resource<OpenStore>, Error> {
        if label != DEFAULT_STORE {
            return Err(Error::NoSuchStore);
        }
        accessor.with(|mut access| {
            let view = access.get();
            let state = view.state.clone();
            view.table
                .push(OpenStore { state })
                .map_err(|_| Error::StoreTableFull)
        })
    }

    async fn get(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<Option<Vec<u8>>, Error> {
        state_of(accessor, &store).and_then(|s| s.with(|m| m.get(&key).cloned()))
    }

    async fn set(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
        value: Vec<u8>,
    ) -> Result<(), Error> {
        state_of(accessor, &store).and_then(|s| {
            s.with(|m| {
                m.insert(key, value);
            })
        })
    }

    async fn delete(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<(), Error> {
        state_of(accessor, &store).and_then(|s| {
            s.with(|m| {
                m.remove(&key);
            })
        })
    }

    async fn exists(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
        key: String,
    ) -> Result<bool, Error> {
        state_of(accessor, &store).and_then(|s| s.with(|m| m.contains_key(&key)))
    }

    async fn get_keys(
        accessor: &Accessor<T, Self>,
        store: Resource<OpenStore>,
    ) -> wasmtime::Result<(StreamReader<String>, FutureReader<Result<(), Error>>)> {
        let keys = state_of(accessor, &store).and_then(|s| s.with(|m| m.keys().cloned().collect()));
        accessor.with(|mut access| {
            let (keys, outcome): (Vec<String>, Result<(), Error>) = match keys {
                Ok(keys) => (keys, Ok(())),
                Err(e) => (Vec::new(), Err(e)),
            };
            Ok((
                StreamReader::new(&mut access, keys)?,
                FutureReader::new(&mut access, async move { wasmtime::error::Ok(outcome) })?,
            ))
        })
    }
}
